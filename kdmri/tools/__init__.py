"""Tools: the command line, the notebook batch runner, notebook-file tooling, benchmarks."""
