"""What a run tells the outside world when it ends: Prometheus metrics and failure alerts.

Infrastructure: these modules know settings, the scrubber and the log, nothing of
pipelines or services; the run service hands them a plain :class:`RunOutcome`.
"""
