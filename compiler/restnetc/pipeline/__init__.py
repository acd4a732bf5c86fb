"""End-to-end jobs that chain the stages (models -> front end -> budget model -> outputs)."""
