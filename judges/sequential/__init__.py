"""judges.sequential."""
