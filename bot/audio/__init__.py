"""Audio pipeline: any voice note or audio file into clips the model accepts (PyAV).

Import the pieces from their modules (``bot.audio.pipeline.AudioPipeline``,
``bot.audio.report.left_out_note``...): importing this package loads nothing heavy.
"""
