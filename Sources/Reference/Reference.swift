// Filled in by the Reference issue.
