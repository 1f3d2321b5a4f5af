"""Models: resolve any student/teacher reference, load it, and encode chat turns."""
