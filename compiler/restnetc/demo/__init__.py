"""The built-in demo project (``project.yaml``), used when no project is given."""
