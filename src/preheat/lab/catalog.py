"""The built-in tasks by name: the one list of them, importing nothing (the command line reads
it at start, before torch or the lab's dependencies are loaded)."""

#: Built-in tasks: name -> "module:class", imported only when used (:func:`preheat.lab.tasks.make_task`).
BUILTIN: dict[str, str] = {
    "river-valley": "preheat.lab.tasks.river_valley:RiverValley",
    "digits": "preheat.lab.tasks.digits:Digits",
    "shakespeare-char": "preheat.lab.tasks.shakespeare:ShakespeareChar",
    "cifar10": "preheat.lab.tasks.cifar10:Cifar10",
}
