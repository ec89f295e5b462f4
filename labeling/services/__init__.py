"""Every write of clipmine, split by domain. Functions are keyword-only, `<entity>_<verb>`."""
