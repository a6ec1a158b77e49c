"""``nst-serve``: the live stylizer in a browser, over WebRTC, for many users on one machine.

The browser's camera reaches the server as a WebRTC video track, is stylised by the same
models and stages as ``nst-cam`` and goes back as a WebRTC track. The parts, each with one job:

* :mod:`~realtime.serve.settings`: one connection's settings and their validation (data-channel
  messages are JSON; bad values give one line naming the setting);
* :mod:`~realtime.serve.timing`: capture-time estimates and the frame stamps behind the page's
  latency figure;
* :mod:`~realtime.serve.engine`: the one inference thread that batches frames of the same model
  and size from different connections, newest frame per connection, never a queue;
* :mod:`~realtime.serve.catalog`: the models a page can pick (every local model, every style of
  a multi-style or arbitrary-style model), loaded on demand, with thumbnails;
* :mod:`~realtime.serve.session`: one peer connection: its tracks, data channel, stages, teardown;
* :mod:`~realtime.serve.app`: the aiohttp application (page, ``POST /offer``, thumbnails, status,
  token check, size limits); the page itself is plain HTML/JS in ``assets/``;
* :mod:`~realtime.serve.client`: a Python WebRTC client (the load test's simulated cameras).

The command line is :mod:`realtime.cli.serve`.
"""
