"""Recorded videos: ``polypserve analyze`` runs the detector and the stream's tracker over every
frame of a video file or a folder of images, and writes an annotated H.264 video, a JSON report
and best-view thumbnails.

    source (decode) ──► detector (in process) or remote (a service's /v1/stream) ──► report
                                                                                └─► draw ──► encode

``pipeline`` runs the stages in threads with small handoffs; ``command`` is the CLI. Only the
data plane and the stream's own code turn frames into tracks, so the analysis of a recording
gives the tracks a live session would give for the same frames.

The job API (``/v1/videos``) runs the same pipeline inside the service, below live traffic:
``upload`` streams a video to disk, ``intake`` checks it in (and removes jobs), ``jobs`` is the
store on disk, ``worker`` runs the jobs and ``progress`` measures them.
"""
