"""AllScikitFlow from Metaflow's @conda_base docs; its @conda_base is flowenv.toml's [base].

flowenv lock && python allscikitflow.py --environment=flowenv run
"""

from metaflow import FlowSpec, step


class AllScikitFlow(FlowSpec):
    @step
    def start(self):
        from sklearn.datasets import load_iris  # pylint: disable=import-error

        self.data = load_iris()
        self.next(self.end)

    @step
    def end(self):
        # Loading self.data needs scikit-learn here too: base gives it to every step.
        print(self.data)


if __name__ == "__main__":
    AllScikitFlow()
