"""`intent demo`: the main job, a story told through the official client."""
