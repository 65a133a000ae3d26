"""What the test suite and the benchmarks share: starting, waiting for and stopping the real
processes they measure (the sandbox, the service under uvicorn, redis-server), on loopback."""
