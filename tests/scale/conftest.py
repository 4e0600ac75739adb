import sys
import time

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.fixture(scope="session")
def ray_cluster(repspace_home):
    """One local Ray cluster (2 CPUs, no dashboard) for the whole session; its address for subprocess drivers."""
    import ray

    from repspace.scale.cluster import native_stderr_quiet, quiet_ray_data

    t0 = time.perf_counter()
    with native_stderr_quiet():
        ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    quiet_ray_data()
    startup = time.perf_counter() - t0
    print(f"\n[ray] local cluster started in {startup:.2f} s", file=sys.stderr)
    yield ctx.address_info["address"]
    t0 = time.perf_counter()
    ray.shutdown()
    print(f"\n[ray] shut down in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
