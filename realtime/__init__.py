"""The real-time runtime: one Stylizer interface, frame pipelines, and the still/video/camera commands."""
