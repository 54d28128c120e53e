"""Fault-injection tests: SIGKILL at every commit step, S3 faults, dropped connections, live writers."""
