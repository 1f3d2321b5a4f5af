"""The scan pipeline: stages in order, the stage cache and the verdict."""
