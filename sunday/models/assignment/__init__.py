"""Task assignment (bug triage / fixer recommendation): rank the people who should take a task from its text."""
