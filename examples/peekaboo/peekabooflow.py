"""PeekabooFlow from Metaflow's docs: peekaboo is disabled in flowenv.toml.

    flowenv lock && python peekabooflow.py --environment=flowenv run

start and end print their env's interpreter; peekaboo prints the one Metaflow
was started with.
"""

import sys

from metaflow import FlowSpec, step


class PeekabooFlow(FlowSpec):
    @step
    def start(self):
        print(sys.executable)
        self.next(self.peekaboo)

    @step
    def peekaboo(self):
        print(sys.executable)
        self.next(self.end)

    @step
    def end(self):
        print(sys.executable)


if __name__ == "__main__":
    PeekabooFlow()
