"""Running a pipeline: stage order over one run context, the cache by input hash, the manifest, publishing,
and the fleet stages (deploy, benchmark, accuracy and numeric checks), which call edgeq.fleet's public API."""
