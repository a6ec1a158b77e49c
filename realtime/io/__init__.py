"""Where frames come from and go to: video files (PyAV), cameras and streams, windows and recorders."""
