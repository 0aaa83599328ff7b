"""edgeproxy's benchmarks: edgeproxy beside the direct origin, nginx and HAProxy."""
