"""Rating: tariffs, rate rows, the cost of a call and its exact inverse (DESIGN.md section 3)."""
