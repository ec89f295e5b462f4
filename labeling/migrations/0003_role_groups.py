from django.db import migrations

ROLE_GROUPS = ("annotator", "taxonomy owner", "admin")  # labeling.roles.Role group names


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("labeling", "0002_taxonomy_annotations_topics"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
