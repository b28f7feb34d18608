"""ondevice: adaptive-depth networks trained once, exported as one program with switchable gates."""

__version__ = "0.1.0"
