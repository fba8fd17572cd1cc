"""Applications that exist only for tests: proof that the framework runs an app it has never
heard of, named only by INTENT_APP."""
