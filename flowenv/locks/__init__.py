"""Lock files: where they live, what they record, how they are written."""
