"""TrainFlow after `flowenv import`: the decorators are gone, flowenv.toml holds the packages.

flowenv lock                                   # locks/ (commit it)
flowenv sync                                   # artifacts to project.store
python flow.py --environment=flowenv run       # each step in its own env
"""

from metaflow import FlowSpec, step


class TrainFlow(FlowSpec):
    @step
    def start(self):
        import numpy as np  # pylint: disable=import-error

        self.data = np.arange(10)
        self.next(self.train)

    @step
    def train(self):
        from sklearn.linear_model import LinearRegression  # pylint: disable=import-error

        self.model = LinearRegression().fit(self.data.reshape(-1, 1), self.data * 2)
        self.next(self.end)

    @step
    def end(self):
        # Disabled in flowenv.toml: the interpreter Metaflow was started with.
        print("done")


if __name__ == "__main__":
    TrainFlow()
