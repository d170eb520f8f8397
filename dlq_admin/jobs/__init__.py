"""Replay jobs: replay a frozen selection of DLQ entries paced, fair, behind a canary,
pausable and restart-safe; and the retention purge of old entries.

* ``model``      the typed rows: a job, its frozen entries, its figures
* ``ports``      ``JobStore``, what the jobs need from the database; ``store`` its adapter
* ``planner``    freeze a selection and order it round-robin by merchant
* ``service``    ``ReplayJobs`` (``DlqAdmin.jobs``): create, list, show, pause, resume, cancel
* ``execution``  one job run by the admin that holds its lease: replay rules per entry,
                 claim, paced publish (``Replay.publish_batch``), canary, outcomes, recovery
* ``runner``     an admin's loop: take the lease of runnable jobs, renew it, run them
* ``views``      a job and its figures as ``ReplayJobView``
* ``retention``  purge discarded and replayed entries past ``PAYPROC_DLQ_RETENTION_DAYS``
"""
