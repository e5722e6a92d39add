"""The exit codes of `edge-inference`, each with what it means (one definition, documented here).

In a pod the reason of 1, 2 and 3 also goes to the termination message (see termination.py).
"""

EXIT_OK = 0  # done
EXIT_FILES_FAILED = 1  # a Batch run finished but some files failed (summary in the log)
# A configuration mistake (one line on stderr), or, in Batch, an event sink that keeps refusing
# (missing bucket, wrong credentials).
EXIT_USAGE = 2
EXIT_STARTUP = 3  # the worker could not start (model missing, state folder unusable)
EXIT_STOPPED = 143  # 128 + SIGTERM: stopped by SIGTERM/SIGINT before a Batch run finished
# `edge-inference events ...`: the store could not be read, or the event was not found.
EXIT_EVENTS_FAILED = 1
