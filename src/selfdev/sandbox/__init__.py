"""The sandbox every candidate program runs in: static checks (`program`), the probe check (`probe`),
the confined child process (`run`) and its kernel-level confinement (`isolation`)."""
