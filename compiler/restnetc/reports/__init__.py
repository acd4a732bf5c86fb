"""Human- and machine-readable outputs: JSON files, tables and plots."""
