"""Word lists of the bundled corpus generator (`corpus.py`).

Changing anything here changes the corpus: bump `corpus.GENERATOR_VERSION` when you do. Lists are
whitespace-separated strings; a noun written `goose/geese` has an irregular plural, others get the
regular `s`/`es`/`ies` plural. Every list must hold distinct entries (checked at import in
`corpus.py`), since the floor is only exact when the text determines each choice.
"""

GIRL_NAMES = """
Mia Emma Olivia Ava Sophia Isabella Amelia Harper Evelyn Abigail Ella Scarlett Grace Chloe Lily
Aria Zoe Nora Hazel Luna Ruby Ivy Alice Clara Stella Violet Aurora Maya Lucy Anna Sarah Leah Hannah
Julia Elena Iris Rose Jade Daisy Molly Ellie Freya Isla Poppy Esme Maisie Matilda Phoebe Martha
Edith Ada Agnes Beatrice Cora Delia Fiona Greta Hilda Ingrid Josie Kira Lena Mabel Nadia Opal Pearl
Quinn Rosa Sylvie Tessa Una Vera Wren Yara Zara Amara Bianca Celia Dina Eliza Fern Gemma Holly
Imogen June Kate Laura Mira Nell Olga Priya Rhea Selma Tara Uma Vicky Wanda Yasmin Zelda Noor Aisha
Fatima Mei Sakura Inès Lucia Marta Sofia Renée Anaïs Noémie Ann Beth Joy Eve Amy Liv
""".split()

BOY_NAMES = """
Liam Noah Oliver Elijah James William Benjamin Lucas Henry Theodore Jack Levi Alexander Mason Ethan
Daniel Jacob Logan Jackson Sebastian Leo Owen Samuel Ezra Julian Hudson Luca Isaac Caleb Nathan Adam
Felix Hugo Oscar Arthur Albert Alfie Archie Bruno Carl Dexter Edgar Finn George Harvey Ivan Jasper
Kai Leon Miles Ned Otto Pablo Quentin Ralph Silas Toby Victor Walter Xavier Yusuf Zane Amir Boris
Cyrus Dario Emil Frank Gideon Hamish Igor Jonah Karl Lars Marco Nico Omar Percy Rafael Stefan Theo
Ulrich Vince Wesley Yuri Zeke Ravi Kenji Tomás José André Søren Björn Ben Tom Sam Max Dan Joe Ray
Tim Rob Paul Peter Mark Luke John Eric Alan Ian Hugh Neil Roy
""".split()

SURNAMES = """
Smith Baker Carter Diaz Evans Fisher Garcia Hill Ito Jones King Lopez Miller Nash Ortiz Patel Reed
Stone Turner Underwood Vance Walker Young Zhang Adams Brooks Cole Dunn Ellis Ford Gray Hart Irving
Jensen Knight Lane Moss Nolan Owens Price Rowe Shaw Todd Upton Wells Wood Yates Abbott Bell Chen
Drake Fox Grant Hayes Kerr Lowe Marsh Noble Oakes Page Ross Sharp Tate Webb Xu Cruz Kim Novak Silva
Rossi Müller Dubois Nakamura Kowalski Andersen Larsen Okafor Mendez Haddad Singh Tanaka
""".split()

PET_NAMES = """
Pip Biscuit Pepper Sunny Mango Noodle Pickles Button Whiskers Ziggy Rusty Clover Peanut Waffles
Comet Bubbles Domino Fudge Gizmo Honey Jelly Kiwi Lucky Nugget Oreo Pebbles Quill Rocket Sprout
Toffee Velvet Widget Yoyo Zippy Acorn Bean Cricket Dusty Ember Fluff Ginger Hopper Inky Jinx Muffin
Nibbles Patch Scout Tiger Twig Wiggles Socks Bandit Cookie Dot Echo Freckles Marshmallow Pudding
Sparky Shadow Smudge Taffy Trixie Bubba Coco Dizzy Fizz Gumdrop
""".split()

TOWN_PREFIXES = """
Oak Ash Elm Pine Birch Maple Willow Stone River Brook Green Silver Gold Iron Copper Red White Black
Blue Rose Thorn Fox Wolf Bear Hawk Raven Swan Deer Mill Fair Kings Queens Salt Sand Frost Sun Moon
Star Glen Lake Amber Cedar Hazel Clay
""".split()

TOWN_SUFFIXES = """
ford ridge field wood dale brook haven port ton bury vale hill stead wick moor cliff gate mouth
bridge holm side worth mere fell
""".split()

SETTLEMENTS = "town village city hamlet port valley".split()

ANIMALS = """
cat dog rabbit hamster turtle parrot pony goat lamb duck goose/geese hen owl fox mouse/mice frog toad
snail lizard hedgehog squirrel badger otter beaver horse cow pig donkey ferret canary finch robin
sparrow crow swan heron crab bee butterfly moth beetle ladybug ant spider puppy kitten bunny chick
piglet calf/calves foal raccoon skunk mole bat wolf/wolves bear lion tiger zebra giraffe monkey panda
koala penguin seal whale dolphin shark octopus/octopuses lobster camel llama yak gecko newt
""".split()

OBJECTS = """
lamp key book map cup bowl spoon plate jar box basket bag hat coat scarf glove boot shoe sock button
ribbon kite ball drum flute bell candle clock mirror brush comb pen pencil crayon notebook letter
stamp shell stone pebble feather leaf/leaves acorn flower seed rope ladder bucket shovel hammer
nail bottle blanket pillow quilt chair stool shelf/shelves bench umbrella wagon wheel sled boat
compass lantern telescope globe puzzle marble balloon paintbrush sticker teacup teapot kettle pot pan
fork knife/knives ring necklace bracelet crown mask whistle trumpet violin guitar banjo harp
backpack suitcase wallet envelope postcard photo painting sketch ticket badge medal trophy flag tent
torch helmet hairbrush toothbrush jacket sweater apron mitten sandal vase statue pinecone cushion
doll robot rattle spinning-top
""".split()

ADJECTIVES = """
old new small big tiny huge shiny dusty broken heavy soft hard warm cold round square wooden golden
bright dark clean dirty strange lovely plain fancy rusty smooth rough striped spotted secret magic
lucky little tall short long empty full sturdy fragile ancient modern quiet noisy sticky fuzzy
gentle curious wobbly crooked polished faded painted carved cracked folded glowing sparkling muddy
sandy frozen bent torn woolly silky tidy cozy handmade precious ordinary odd wonderful enormous
delicate bumpy hollow tangled twisted narrow wide thick thin speckled dented
""".split()

COLORS = """
red blue green yellow orange purple pink brown black white gray teal violet indigo crimson scarlet
beige maroon navy olive lime turquoise lavender amber coral ivory peach mint plum cream
""".split()

FLAVORS = """
apple plum cherry honey lemon berry carrot pumpkin potato cheese tomato mushroom banana chocolate
almond walnut peach pear rice bean corn onion spinach strawberry blueberry coconut vanilla cinnamon
raspberry chestnut
""".split()

DISHES = """
cake pie soup bread stew tart jam pudding salad porridge pancakes noodles dumplings biscuits
sandwiches curry rolls buns fritters muffins
""".split()

PLACES = """
market river bridge library park school bakery harbor lake forest hill meadow garden farm mill castle
tower station beach well orchard pond barn chapel square fountain museum zoo theater cafe inn stable
workshop lighthouse cave valley island dock canal greenhouse playground gate
""".split()

# things you can find something under/behind/near
SPOTS = """
bed table bench stairs tree bush rock door window fence gate shed wagon boat bridge porch sofa desk
cupboard barrel
""".split()

SPOT_PREPS = ["under", "behind", "near", "beside", "inside", "on top of"]

CONTAINERS = "bag basket pocket box drawer backpack chest jar".split()

PROFESSIONS = """
baker farmer teacher doctor painter sailor fisherman tailor carpenter gardener builder potter weaver
singer dancer writer poet pilot driver nurse cook miller blacksmith shoemaker librarian musician
juggler inventor scientist astronomer shepherd beekeeper mechanic plumber merchant guard ranger
clockmaker glassblower mapmaker toymaker engineer artist actor
""".split()

VERBS = """
painted fixed carried dropped washed polished cleaned hid lifted moved opened closed wrapped packed
shook tossed caught kicked pushed pulled dragged borrowed returned sold traded shared held touched
folded placed stacked sketched measured weighed decorated repaired mended tied buried unpacked locked
filled emptied examined studied admired guarded rolled bounced threw dusted scrubbed dried wiped
""".split()

ADVERBS = """
slowly quickly carefully gently quietly proudly happily sadly bravely calmly eagerly loudly softly
neatly boldly kindly patiently nervously cheerfully gladly firmly lightly politely shyly swiftly
""".split()

MOVE_VERBS = "walked ran rode hurried wandered skipped marched strolled raced cycled".split()

TIMES = [
    "One morning", "One evening", "One afternoon", "Later that day", "The next day", "On Monday",
    "On Tuesday", "On Wednesday", "On Thursday", "On Friday", "On Saturday", "On Sunday",
    "After lunch", "Before dinner", "At noon", "At dawn", "At sunset", "That winter",
    "In the spring", "One rainy day", "One sunny day", "A week later", "Soon after",
]

FEELINGS = """
happy sad proud tired excited calm worried surprised brave grateful curious hopeful lonely cheerful
sleepy hungry nervous glad amazed puzzled pleased relieved thoughtful jolly grumpy
""".split()

EXCLAMATIONS = [
    "What a lovely day!", "I can do it!", "Look at that!", "This is amazing!", "Let us go home.",
    "I am so hungry!", "Where did it go?", "Wait for me!", "That was fun!", "Be careful!",
    "I have an idea!", "Can you help me?", "Thank you so much!", "Oh no!", "Hooray!",
    "Let us try again.", "I will be right back.", "Follow me!", "It is getting late.",
    "Listen to this!", "Do not worry.", "We did it!", "What is that noise?", "Come and see!",
    "I knew it!", "Please be quiet.", "Is anyone there?", "Good morning!", "Good night!",
    "How strange!",
]

HOME_ENDINGS = [
    "smiled", "fell asleep", "ate a big dinner", "sang a little song", "read a book by the fire",
    "looked at the stars", "drank a cup of tea", "wrote a long letter", "took a warm bath",
    "told everyone about the day",
]

HOUSE_ADJECTIVES = "small big old new blue red yellow white tall narrow cozy crooked stone wooden".split()

BUILDINGS = """
bakery library school bridge park market tower well farm mill fountain museum garden inn stable
harbor
""".split()

MONTHS = """
January February March April May June July August September October November December
""".split()

LIST_KINDS = "shopping packing picnic camping party school holiday garden".split()

NUMBER_WORDS = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty
""".split()
