"""Export writers: the ExecuTorch program with switchable gates, Core ML functions and LiteRT signatures.

Each writer is imported on first use (``ondevice.export.executorch``, ``.coreml``, ``.litert``): their
dependencies are heavy or optional. The bundle they are assembled into is ``ondevice.bundle``.
"""
