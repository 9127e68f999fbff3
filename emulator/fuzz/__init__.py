"""Protocol fuzzing (issue 6): the per-layer fuzz targets, the seed corpus and the
coverage-guided (atheris) harness; the fuzz-a-DUT mode and the `smets-emu fuzz` command.
"""
