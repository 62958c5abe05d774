"""Read side: trends, signals and the caseload, computed with clinical/ from stored data."""
