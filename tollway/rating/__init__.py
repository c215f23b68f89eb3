"""Rating: tariffs, rate rows, the cost of a call and its exact inverse (docs/design.md section 3)."""
