"""Audio pipeline: any voice note or audio file into clips the model accepts (PyAV)."""
