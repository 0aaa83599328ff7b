"""edgeproxy's benchmarks: beside the direct origin, nginx, HAProxy and Varnish."""
