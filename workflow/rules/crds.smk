if config["crds"]["use_local_context"]:

    rule local_crds_context:
        """The project's synthetic offline CRDS context (tests and demo only)."""
        output:
            f"{config['crds']['local_path']}/spec3flow_crds.json",
        log:
            f"{RESULTS}/logs/local_crds_context/local_crds_context.log",
        localrule: True
        shell:
            "{PYTHON} -m spec3flow.crds_local --crds-path {config[crds][local_path]:q} > {log:q} 2>&1"
