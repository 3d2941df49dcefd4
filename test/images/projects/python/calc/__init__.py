"""A tiny package with unit tests, built and tested inside the python image."""
from concurrent.futures import ProcessPoolExecutor


def square(x: int) -> int:
    return x * x


def parallel_squares(n: int) -> list[int]:
    with ProcessPoolExecutor(max_workers=4) as pool:
        return list(pool.map(square, range(n)))
