"""Where frames come from and go to: video files (PyAV), cameras and streams, windows and recorders.

OpenCV is imported here, before any module of this package imports PyAV: both wheels bundle the
same X11 extension libraries (``libxcb-shm``, ``-shape``, ``-xfixes``, under identical names), and
whichever loads first is used by both. PyAV's copies are linked to PyAV's own ``libxcb``, so an
OpenCV window opened after PyAV was loaded hangs in Qt's first X call. With OpenCV first, both
use OpenCV's copies and the system ``libxcb``; :class:`realtime.io.sinks.WindowSink` refuses with
one clear line where another module loaded PyAV first.
"""

import cv2  # noqa: F401 - loaded for its side effect: see above
