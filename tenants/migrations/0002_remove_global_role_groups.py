"""Roles are no longer Django groups: their rights come from the membership in the
object's tenant (tenants.permissions). The old ``role:*`` groups granted a role's
rights in every tenant and were never taken away on demotion, so they go, with
their permissions and members. The "operators" group is not a tenant role and stays."""

from django.db import migrations

ROLE_GROUPS = ["role:owner", "role:manager", "role:staff", "role:cleaner"]


def remove_role_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=ROLE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("tenants", "0001_initial"),
    ]

    # Not reversible into the old model: the rights now live in tenants.roles.
    operations = [migrations.RunPython(remove_role_groups, migrations.RunPython.noop)]
