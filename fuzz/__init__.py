"""The fuzzing side of mmdiff: text format, runner, differ, minimizer, CLI."""
