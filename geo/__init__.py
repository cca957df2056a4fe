"""Geography for alertd: order areas, the municipality table and the point index."""
