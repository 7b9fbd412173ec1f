"""The job runner: the queue of runs and audits, their command lines, the runs on disk as read, the run form.

No torch: everything here reads and writes files and starts child processes.
"""
