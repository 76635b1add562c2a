"""The terminal names E-Modal's appointment page offers for the codes its sheets write, as the
customer's operators use them (docs/upstream-contract.md, "Terminal names"). Staff add more in
the admin as accounts meet new terminals."""

from django.db import migrations

TERMINALS = {
    "ETSLAX": "Everport Terminal Services - Los Angeles",
    "ETSOAK": "Everport Terminal Services - Oakland",
    "ETSTAC": "Everport Terminal Services Inc. - Tacoma, WA",
    "FIT": "Florida International Terminal (FIT)",
    "HUSKY": "Husky Terminal and Stevedoring, Inc.",
    "ITS": "ITS Long Beach",
    "OICT": "OICT",
    "PCT": "Pacific Container Terminal",
    "PACKR": "Packer Avenue Marine Terminal",
    "PET": "Port Everglades Terminal",
    "SSA": "SSA Terminal - PierA / LB",
    "SSAT30": "SSAT - Terminal 30",
    "SSAT5": "SSAT - Terminal 5",
    "T18": "Terminal 18",
    "TTI": "Total Terminals Intl LLC",
    "TRPOAK": "TraPac - Oakland",
    "TRP1": "TraPac LLC - Los Angeles",
    "WUT": "Washington United Terminals",
}


def add_names(apps, schema_editor):
    Terminal = apps.get_model("queries_app", "Terminal")
    for code, name in TERMINALS.items():
        terminal, created = Terminal.objects.get_or_create(code=code, defaults={"name": name})
        if not created and not terminal.name:
            terminal.name = name
            terminal.save(update_fields=["name"])


def remove_names(apps, schema_editor):
    Terminal = apps.get_model("queries_app", "Terminal")
    Terminal.objects.filter(code__in=TERMINALS, first_seen_at__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("queries_app", "0005_real_upstream")]

    operations = [migrations.RunPython(add_names, remove_names)]
