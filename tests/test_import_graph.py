"""No import cycles inside hf_modular, counting every import: module level, inside functions (lazy)
and under TYPE_CHECKING. grimp (import-linter's graph library) builds the graph from the source."""

from __future__ import annotations

import grimp


def test_the_package_has_no_import_cycles():
    graph = grimp.build_graph("hf_modular", include_external_packages=False)
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if graph.chain_exists(importer=imported, imported=module):
                back = graph.find_shortest_chain(importer=imported, imported=module)
                cycles.append(" -> ".join((module, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_check_sees_lazy_and_type_checking_imports():
    graph = grimp.build_graph("hf_modular", include_external_packages=False)
    # the modular modeling module imports the Hub integration inside a method; model_card reads the table
    # type under TYPE_CHECKING: both are edges of the graph the cycle check walks
    assert graph.direct_import_exists(
        importer="hf_modular.methods.modular.modeling", imported="hf_modular.integrations.hub"
    )
    assert graph.direct_import_exists(
        importer="hf_modular.methods.modular.model_card", imported="hf_modular.methods.modular.assembly_table"
    )
