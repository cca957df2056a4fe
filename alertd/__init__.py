"""alertd: evacuation orders and shelter openings pushed to residents phones."""
