"""What the tests share: paths, configs, the one way to run the CLI, the agent as a process,
the tick loop over a pipeline, and the real parts' harnesses (mosquitto watcher, virtual BlueZ,
network faults, a test CA). No test module imports another test module; they import this."""
