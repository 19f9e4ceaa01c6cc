"""A method whose training raises deep inside its code, for the failure tests."""

from bench.plugins import Method as Base
from bench.plugins import Step


def _deep_inside(ctx):
    raise RuntimeError(f"deliberately broken at seed {ctx.seed}\nsecond line of the message")


def train(ctx):
    return _deep_inside(ctx)


class Method(Base):
    no_zero_shot = "it never trains"

    def steps(self, cfg):
        return (Step("broken", compute=train),)

    def embeddings(self, cfg, data, models):
        raise AssertionError("never reached")
