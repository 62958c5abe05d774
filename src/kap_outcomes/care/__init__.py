"""Treatment courses and their sessions (dosing, boosters, integration …)."""
