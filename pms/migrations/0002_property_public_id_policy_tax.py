import uuid
from decimal import Decimal

import django.core.validators
from django.db import migrations, models


def fill_public_ids(apps, schema_editor):
    Property = apps.get_model("pms", "Property")
    for prop in Property.objects.filter(public_id__isnull=True).only("pk"):
        prop.public_id = uuid.uuid4()
        prop.save(update_fields=["public_id"])


class Migration(migrations.Migration):
    dependencies = [("pms", "0001_initial")]

    operations = [
        # A unique UUID on existing rows: add nullable, fill one by one, then tighten.
        migrations.AddField(
            model_name="property",
            name="public_id",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="property",
            name="public_id",
            field=models.UUIDField(default=uuid.uuid4, unique=True, editable=False),
        ),
        migrations.AddField(
            model_name="property",
            name="tax_rate",
            field=models.DecimalField(
                decimal_places=2,
                default=Decimal("0"),
                help_text="Percent of accommodation and cleaning, e.g. 10.00.",
                max_digits=5,
                validators=[django.core.validators.MinValueValidator(Decimal("0"))],
            ),
        ),
        migrations.AddField(
            model_name="property",
            name="cancellation_policy",
            field=models.CharField(
                choices=[
                    ("flexible", "Flexible: full refund up to 1 day before check-in"),
                    ("moderate", "Moderate: full refund up to 5 days before, then 50%"),
                    ("strict", "Strict: full refund up to 14 days before, 50% up to 7 days, then none"),
                ],
                default="moderate",
                max_length=20,
            ),
        ),
    ]
