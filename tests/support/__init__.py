"""What the tests share: the application on the in-memory platform, model rules, paths, processes."""
