"""Environment fixes that must hold in every process of a gradus environment."""
